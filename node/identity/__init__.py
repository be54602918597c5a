"""Identity: validators for USCC, organisation codes and resident IDs (pure), masks."""
