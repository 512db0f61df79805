"""The hub's HTTP API: dependencies and routes by resource."""
