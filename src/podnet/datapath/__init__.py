"""The only code that changes the kernel: links, addresses, routes, neighbours and sysctls."""
