"""Reading and judging: fixity sweeps, retention sweeps, export bundles and the
offline bundle verifier. Nothing here rewrites or deletes an original."""
