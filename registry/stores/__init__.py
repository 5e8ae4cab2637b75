"""Store backends: in-memory (tests, ephemeral nodes) and SQLite (the embedded default)."""
