"""The integrator REST API (docs/api.md): thin views over the apps' services and selectors,
one module per resource (`missions`, `events`, `decisions`) on what they share (`base`)."""
