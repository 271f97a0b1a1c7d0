"""The wire models both the app and its client use: vendor schemas (`contraforce`, `d3`),
`commands`, and the `outcome`. A package of its own, so installing the client never installs
the app's `shared` package; it imports pydantic and nothing of the app."""
