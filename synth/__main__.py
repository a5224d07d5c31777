from synth.cli import main

if __name__ == "__main__":  # guard: worker processes (spawn/forkserver) re-import this module
    main()
