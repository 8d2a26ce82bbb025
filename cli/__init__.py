"""The `circuitmap` command line (installed as the `circuitmap_cli` package)."""
