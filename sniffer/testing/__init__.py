"""Test helpers for live capture: a node of network-namespace pods, and a Kubernetes API
emulated with kmock. Imported by tests and by ``scripts/node.py``; never by the agent."""
