"""dev --local: run one service as a local process, bridged to the others (env, in, out)."""
