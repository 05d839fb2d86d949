"""Staff review of what rooms said: the room and conversation admin, message search, exports and usage.

`admin` (rooms' configuration, read-only conversation review, the usage report), `search` (full-text search over
messages, SQLite FTS5 or PostgreSQL tsvector), `exports` (JSON and Markdown) and `usage` (turns and tokens).
Reads only, through the domain core (`models`, `selectors`, `turns`, `message_html`, `knowledge.filters`,
`providers.registry`); never imports `rooms/`: review works on saved messages, not on live turns.
"""
