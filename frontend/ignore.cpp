// .containerignore / .dockerignore matching (in progress).
