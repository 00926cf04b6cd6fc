"""The store + task data -> a trained run (torch): data, model, train, evaluate, the run
directory."""
