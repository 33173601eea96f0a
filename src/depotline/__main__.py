from depotline.cli import main

main()
