"""The attacks of a tenant on a live hub (its own broker credentials and API token), replayed
against a running hub on both stores. Each module holds one family of attacks; every test
asserts the refusal, that nothing was delivered, and that nothing was recorded under the
victim's name."""
