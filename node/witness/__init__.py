"""Witnessing (issue 13): cosigning peers' checkpoints (C2SP tlog-cosignature, tlog-witness
add-checkpoint), gossip of the checkpoints peers hold, and portable fork evidence."""
