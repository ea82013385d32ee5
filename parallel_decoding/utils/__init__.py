"""Cross-cutting helpers every layer may use: the user-error exit, secrets, logging and run bookkeeping."""
