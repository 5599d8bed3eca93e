# Convenience targets; the scripts are the reference.
.PHONY: test deb demo

test:
	bash scripts/test.sh

deb:
	bash packaging/build-deb.sh dist

demo:
	bash scripts/demo.sh
