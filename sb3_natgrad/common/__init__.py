"""Shared natural-gradient mathematics and policy helpers: Fisher-vector products and sampled-Fisher actions
(``fisher``), (preconditioned) conjugate gradient (``cg``), trust-region line search (``line_search``), actor /
critic parameter selection (``policies``) and the fused-Adam switch (``fused``)."""
