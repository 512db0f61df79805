"""Hub core: settings and security helpers."""
