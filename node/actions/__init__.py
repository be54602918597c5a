"""Joint reward and punishment: responses, hits and lifted measures (issue 15)."""
