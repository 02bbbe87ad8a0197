"""The sandbox's own tests: the moto fills, the ECS simulator, the GitHub and Anthropic servers."""
