# Bundle, docker image, submission zips and baselines (organizer and participant tools).
