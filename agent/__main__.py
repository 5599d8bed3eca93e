from agent.cli import entry_point

entry_point()
