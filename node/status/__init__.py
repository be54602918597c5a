"""What `creditnode status` shows, collected once for every front end: the CLI's tables and
JSON, the `status --html` page and the console's operator pages."""
