"""The node agent: serves CNI requests for the pods of the node it runs in."""
