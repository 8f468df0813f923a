"""The command line and what only it uses: local servers, data sets, replay, demo, benchmarks."""
