"""Meeting places: found in mail (``extract``), remembered per correspondent and suggested in
an alert (``suggest``). Precision first throughout: no suggestion beats a wrong one."""
