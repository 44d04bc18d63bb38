"""The loop primitive shared by the dispatcher and the network loops (`core.LoopCore`)."""
