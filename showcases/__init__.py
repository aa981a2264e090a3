"""The missions that ship with StudioX as worked examples, each with its own pages."""
