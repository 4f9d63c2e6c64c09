from gridmap import create_app

app = create_app()
