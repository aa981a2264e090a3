"""The integrator REST API (SPEC §9): thin views over the apps' services and selectors."""
