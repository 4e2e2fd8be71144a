from strata.cli.main import app

app()
