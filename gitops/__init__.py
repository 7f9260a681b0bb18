"""GitOps pieces of srs: Argo CD health checks for the srs kinds, and the tools around them."""
