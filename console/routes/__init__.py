"""The console's pages, one module per area; each route depends on console.auth.need/open_page."""
