"""The integrator REST API (docs/api.md): thin views over the apps' services and selectors."""
