"""Run networks of real lilypad-p2p nodes on one machine (the demo now; the simnet later)."""
