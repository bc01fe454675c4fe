"""Style DNA: how a source video looks and is edited, measured from its decoded frames."""
