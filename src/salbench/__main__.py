from salbench.cli import app

app(prog_name="salbench")
