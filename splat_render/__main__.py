from splat_render.cli import run

run()
