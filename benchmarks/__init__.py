"""Speed and scale measurements against baselines measured in the same run. Run on demand, not in
`make test`: see each module's docstring for its command, and docs/performance.md for the figures."""
