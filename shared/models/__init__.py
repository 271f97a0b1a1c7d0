"""Typed models: vendor schemas (`contraforce`, `d3`), `commands`, and the `outcome`."""
