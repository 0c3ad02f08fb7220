"""How pytest sees the harness: the plugin and its option table, the hooks it offers, verify_case (what
a property calls), case files and the regression corpus."""
