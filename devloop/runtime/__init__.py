"""Where services run: the Docker engine or a Kubernetes cluster, behind one interface."""
