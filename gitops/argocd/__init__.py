"""Argo CD health checks for ``srs.dev`` kinds.

``resource_customizations/`` holds them in Argo CD's own layout (``health.lua``,
``health_test.yaml``, ``testdata/``), so they can be contributed upstream unchanged;
:mod:`gitops.argocd.healthchecks` renders them into the ways Argo CD is configured
(``argocd-cm``, the Helm chart's values, the Argo CD Operator's ``ArgoCD`` resource), and
:mod:`gitops.argocd.interpreter` runs them with Argo CD's Lua VM.
"""
