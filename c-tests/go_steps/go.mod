module go_steps

go 1.19
