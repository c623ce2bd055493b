"""The stage notebooks, installed with rewinterp as the package ``rewinterp_notebooks`` so that the pipeline finds
them (their ``parameters`` cells define each stage's parameters) in a checkout and in an installed wheel alike."""
