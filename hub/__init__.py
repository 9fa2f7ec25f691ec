"""The Inbeeld hub: API, router, broker topology and provisioning, store, audit, CLI."""
