"""Entry point frozen by PyInstaller into harvest.exe (same as the `harvest` console script)."""

from agent.cli.main import entry_point

if __name__ == "__main__":
    entry_point()
