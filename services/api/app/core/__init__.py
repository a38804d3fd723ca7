"""Cross-cutting pieces every domain uses: settings, the database chain, errors, logging."""
