"""Files and descriptors, as Linux's fs/."""
