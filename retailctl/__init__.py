"""retailctl: the operators' toolkit over the retail backend's database and logs."""
