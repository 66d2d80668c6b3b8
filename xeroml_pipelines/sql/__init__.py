"""The ClickHouse SQL the export is made of, as text: XeroML's source tables and their DDL, which
version of a record belongs to a window, and how a record becomes its line or its typed columns.
Nothing here talks to a server."""
