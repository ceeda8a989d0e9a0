from livingdrug.cli import main

main()
