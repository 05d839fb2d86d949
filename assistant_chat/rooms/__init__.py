"""The live room: a websocket per member, turns streamed to every member of the room at once.

`consumer` (the socket, reached only through `routing`), `events` (the wire protocol, every frame typed),
`fanout` (one hub per process and room: crosses the channel layer once, writes each frame to every local socket),
`turn_runner` (one task per turn, owned by the process, not the socket) and `coalescer` (tokens into frames).
May import the domain core (`models`, `services`, `selectors`, `turns`, `errors`, `rendering`, `message_html`)
and `providers.base`; never `review/` or `api/`. Nothing outside this package imports `consumer`.
See docs/rooms.md.
"""
